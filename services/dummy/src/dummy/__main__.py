from dummy.main import main

main()

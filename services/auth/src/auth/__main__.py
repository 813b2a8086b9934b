from auth.main import main

main()

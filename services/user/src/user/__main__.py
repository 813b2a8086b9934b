from user.main import main

main()

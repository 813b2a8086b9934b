from tags.service import main

main()

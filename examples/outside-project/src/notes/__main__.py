from notes.service import main

main()

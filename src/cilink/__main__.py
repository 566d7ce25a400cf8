from cilink.cli import main

main()

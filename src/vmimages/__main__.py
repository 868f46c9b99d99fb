from vmimages.cli import main

main()

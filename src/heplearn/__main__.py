from heplearn.cli import main

main()

from aico.cli.main import main

main()

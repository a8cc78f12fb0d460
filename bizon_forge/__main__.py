from bizon_forge.cli import main

main()

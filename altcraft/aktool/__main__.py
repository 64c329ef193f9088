from altcraft.aktool.cli import main

main()

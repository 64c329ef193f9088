from altcraft.akd.cli import main

main()

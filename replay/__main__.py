from trainio.replay.cli import main

main()

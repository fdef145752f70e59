from trainio.tracer.cli import main

main()

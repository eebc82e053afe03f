from wavezoo.paper.cli import main

main()

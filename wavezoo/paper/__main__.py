from wavezoo.paper.commands import main

main()

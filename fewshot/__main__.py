from fewshot.cli import main

main()

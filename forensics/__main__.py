from forensics.main import main

main()

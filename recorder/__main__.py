from recorder.main import main

main()

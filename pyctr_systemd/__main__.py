from pyctr_systemd.cli import main

main()

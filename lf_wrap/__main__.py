from lf_wrap.cli import main

main()

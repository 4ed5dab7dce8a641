from cortex_gateway.user_cli import main

main()

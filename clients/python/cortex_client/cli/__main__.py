from cortex_client.cli import main

main()

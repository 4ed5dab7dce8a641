"""What each account may do: its limits, quotas, budget and providers (issue 17)."""

"""Storage behind the protocol: the interface (`interface`) and its implementations."""

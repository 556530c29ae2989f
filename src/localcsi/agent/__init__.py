"""The node agent: discovers disks and VGs, initialises VGs, reports NodeLocalStorage status, reconciles LVs."""

"""The storage controller: one NodeLocalStorage per Node from the NodeLocalStorageInitConfig, under a Lease."""

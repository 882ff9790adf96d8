"""Pure protocol code: bytes and dicts in, bytes and dicts out. Imports nothing else of wifiprov."""

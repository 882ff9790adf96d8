"""Bind the kernel ciphers btvirt binds through AF_ALG (ecb(aes), cmac(aes)) before it starts:
under TCG the first bind is slow enough that a controller's reset times out otherwise."""

import socket

for kind, name in (("skcipher", "ecb(aes)"), ("hash", "cmac(aes)")):
    with socket.socket(socket.AF_ALG, socket.SOCK_SEQPACKET, 0) as s:
        s.bind((kind, name))
        print(f"bound {kind} {name}", flush=True)

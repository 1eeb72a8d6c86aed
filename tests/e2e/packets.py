"""A crafted TCP SYN to 127.0.0.1:PORT sent as a raw Ethernet frame to another host's MAC, and what comes back.

No normal stack sends such a packet (127.0.0.1 never leaves a host), so this is what an attacker on the same
link does against a Docker host (moby/moby#45610). Run inside the attacker's network namespace:

    ip netns exec NS python3 tests/e2e/packets.py --iface eth0 --dst-mac MAC --src-ip IP --dport PORT [--host-ip IP]

Prints one line: `SYN-ACK` (the port answered: reachable from the link), `RST`, or `NONE` (dropped).
Standard library only (it runs with the system's python3, AF_PACKET needs root).
"""

from __future__ import annotations

import argparse
import contextlib
import random
import select
import socket
import struct
import time
from pathlib import Path

ETH_P_ALL, ETH_P_IP = 0x0003, 0x0800
SYN, RST, ACK = 0x02, 0x04, 0x10


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def syn_frame(src_mac: bytes, dst_mac: bytes, src_ip: str, dst_ip: str, sport: int, dport: int, seq: int) -> bytes:
    src, dst = socket.inet_aton(src_ip), socket.inet_aton(dst_ip)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, SYN, 64240, 0, 0)
    pseudo = src + dst + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), random.randrange(1 << 16), 0x4000, 64,
                     socket.IPPROTO_TCP, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return dst_mac + src_mac + struct.pack("!H", ETH_P_IP) + ip + tcp


def answer(frame: bytes, dst_ip: str, sport: int, dport: int) -> str | None:
    """`SYN-ACK`/`RST` when `frame` is the reply to our SYN (from dst_ip:dport to our sport), else None."""
    if len(frame) < 14 + 20 + 20 or struct.unpack("!H", frame[12:14])[0] != ETH_P_IP:
        return None
    ip = frame[14:]
    ihl = (ip[0] & 0x0F) * 4
    if ip[9] != socket.IPPROTO_TCP or ip[12:16] != socket.inet_aton(dst_ip):
        return None
    src_port, dst_port = struct.unpack("!HH", ip[ihl:ihl + 4])
    if (src_port, dst_port) != (dport, sport):
        return None
    flags = ip[ihl + 13]
    if flags & (SYN | ACK) == SYN | ACK:
        return "SYN-ACK"
    return "RST" if flags & RST else None


def be_known(host_ip: str) -> None:
    """Get into the host's ARP cache first, as moby/moby#41872's attacker does with a plain connection: the
    host would otherwise ask for our MAC from source 127.0.0.1 (the reply's un-NATed source), which no one answers."""
    with contextlib.suppress(OSError):  # refused or not: the host saw our ARP request and knows our MAC
        socket.create_connection((host_ip, 9), timeout=2).close()


def probe(iface: str, dst_mac: str, src_ip: str, dst_ip: str, dport: int, tries: int = 3, wait_s: float = 1.5) -> str:
    src_mac = bytes.fromhex(Path(f"/sys/class/net/{iface}/address").read_text().strip().replace(":", ""))
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    try:
        sock.bind((iface, 0))
        sport = random.randrange(20000, 60000)
        for _ in range(tries):  # bounded: a few SYNs (the victim may first resolve our address with ARP)
            sock.send(syn_frame(src_mac, bytes.fromhex(dst_mac.replace(":", "")), src_ip, dst_ip, sport, dport,
                                random.randrange(1 << 32)))
            deadline = time.monotonic() + wait_s
            while (left := deadline - time.monotonic()) > 0:
                ready, _, _ = select.select([sock], [], [], left)
                if not ready:
                    break
                got = answer(sock.recv(65535), dst_ip, sport, dport)
                if got:
                    return got
    finally:
        sock.close()
    return "NONE"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iface", default="eth0")
    parser.add_argument("--dst-mac", required=True)
    parser.add_argument("--src-ip", required=True)
    parser.add_argument("--dst-ip", default="127.0.0.1")
    parser.add_argument("--dport", type=int, required=True)
    parser.add_argument("--host-ip", help="the host's own address on the link, to get into its ARP cache first")
    args = parser.parse_args()
    if args.host_ip:
        be_known(args.host_ip)
    print(probe(args.iface, args.dst_mac, args.src_ip, args.dst_ip, args.dport))


if __name__ == "__main__":
    main()

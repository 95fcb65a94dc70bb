"""In-memory stand-ins for UDP ports, so RtpSession runs on task.Clock without sockets."""
from twisted.internet.protocol import DatagramProtocol

from ivr.rtp.ports import PortPair


class FakeUdpPort:
    def __init__(self, number):
        self.number = number
        self.sent = []  # (data, addr)
        self.protocol: DatagramProtocol | None = None
        self.listening = True

    def write(self, data, addr):
        self.sent.append((data, addr))

    def stopListening(self):  # noqa: N802
        self.listening = False


class FakePorts:
    def __init__(self, number=40000):
        self.number = number
        self.released = []

    def allocate(self, make_rtp, make_rtcp, interface="127.0.0.1", reactor=None):
        rtp, rtcp = FakeUdpPort(self.number), FakeUdpPort(self.number + 1)
        rtp.protocol, rtcp.protocol = make_rtp(), make_rtcp()
        self.pair = PortPair(self.number, rtp, rtcp)
        return self.pair

    def release(self, pair):
        pair.rtp.stopListening()
        pair.rtcp.stopListening()
        self.released.append(pair.number)

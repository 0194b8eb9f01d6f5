#!/usr/bin/env python3
"""Write sehat_opd/static/call.wav, the ring of the waiting room's Call Now.

Two soft bell strikes (E6 then C6, with their overtones, decaying), 8-bit
mono at 11 025 Hz: about 15 KB, generated here so that nothing is fetched
at run time. Run it again only to change the sound.
"""
import math
import wave
from pathlib import Path

RATE = 11025
TARGET = Path(__file__).resolve().parent.parent / 'sehat_opd' / 'static' / (
    'call.wav')


def strike(frequency, seconds):
    "A bell-like note: fundamental plus two partials, exponential decay."
    samples = []
    for i in range(int(RATE * seconds)):
        t = i / RATE
        envelope = math.exp(-4.0 * t) * min(1.0, t * 200)
        value = (math.sin(2 * math.pi * frequency * t)
            + 0.4 * math.sin(2 * math.pi * 2.76 * frequency * t)
            * math.exp(-6.0 * t)
            + 0.2 * math.sin(2 * math.pi * 5.4 * frequency * t)
            * math.exp(-9.0 * t))
        samples.append(envelope * value / 1.6)
    return samples


def main():
    samples = strike(1318.5, 0.55) + strike(1046.5, 0.8)
    with wave.open(str(TARGET), 'wb') as out:
        out.setnchannels(1)
        out.setsampwidth(1)
        out.setframerate(RATE)
        out.writeframes(bytes(
                max(0, min(255, int(128 + 110 * s))) for s in samples))
    print('%s: %d bytes' % (TARGET, TARGET.stat().st_size))


if __name__ == '__main__':
    main()

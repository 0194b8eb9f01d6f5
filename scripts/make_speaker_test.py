#!/usr/bin/env python3
"""Write sehat_opd_video/static/speaker-test.wav, the device check's chime.

A two-note chime (E5 then A5, soft attack and decay), 16 kHz mono 16-bit,
about 1.2 s: small enough for a slow connection, clear on phone speakers.
Generated once and committed; run again only to change the sound.
"""
import math
import struct
import wave
from pathlib import Path

RATE = 16000
TARGET = (Path(__file__).resolve().parent.parent / 'sehat_opd_video'
    / 'static' / 'speaker-test.wav')


def note(frequency, seconds, volume=0.45):
    samples = []
    total = int(RATE * seconds)
    for i in range(total):
        t = i / RATE
        attack = min(1.0, t / 0.015)
        decay = math.exp(-3.2 * t)
        value = (math.sin(2 * math.pi * frequency * t)
            + 0.3 * math.sin(4 * math.pi * frequency * t))
        samples.append(volume * attack * decay * value / 1.3)
    return samples


def main():
    samples = note(659.25, 0.5) + note(880.0, 0.7)
    with wave.open(str(TARGET), 'wb') as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(b''.join(
                struct.pack('<h', int(max(-1, min(1, s)) * 32767))
                for s in samples))
    print(TARGET, TARGET.stat().st_size, 'bytes')


if __name__ == '__main__':
    main()

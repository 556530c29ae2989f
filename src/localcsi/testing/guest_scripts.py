"""Python scripts run inside the node VM by several tests."""

# argv: PATH CHUNKS [PAUSE_SECONDS]. Writes CHUNKS MiB of known data with an fsync after each,
# pausing between chunks so that something can happen meanwhile; prints the data's sha256.
STEADY_WRITER = """
import hashlib, os, sys, time
path, chunks = sys.argv[1], int(sys.argv[2])
pause = float(sys.argv[3]) if len(sys.argv) > 3 else 0.05
digest = hashlib.sha256()
with open(path, "wb") as out:
    for index in range(chunks):
        block = hashlib.sha256(str(index).encode()).digest() * (1024 * 1024 // 32)
        out.write(block); out.flush(); os.fsync(out.fileno()); digest.update(block)
        time.sleep(pause)
print(digest.hexdigest())
"""

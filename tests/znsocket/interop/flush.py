"""``python flush.py znsocket://HOST:PORT``: empty the server's store."""

import json
import sys

import znsocket

c = znsocket.Client.from_url(sys.argv[1])
c.flushall()
c.sio.disconnect()
print(json.dumps(True))

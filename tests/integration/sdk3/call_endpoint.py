"""An application on the `together` 3.x SDK calling a v2 endpoint with the values of its connection
ConfigMap (TOGETHER_MODEL, TOGETHER_BASE_URL) and its key (TOGETHER_API_KEY) in the environment.

The 3.x SDK adds `/v1` to its paths itself, so it is given the base URL without the ConfigMap's `/v1`
(docs/together-v2.md, row 2). Runs in the SDK's own virtualenv; prints the model that answered.
"""

import os

from together import Together

client = Together(base_url=os.environ["TOGETHER_BASE_URL"].removesuffix("/v1"), max_retries=0)
reply = client.chat.completions.create(
    model=os.environ["TOGETHER_MODEL"], messages=[{"role": "user", "content": "Say hi"}]
)
print(reply.model)

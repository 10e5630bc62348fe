"""An application on the `together` 3.x SDK calling a v2 endpoint with the values of its connection
ConfigMap (TOGETHER_MODEL, TOGETHER_BASE_URL) and its key (TOGETHER_API_KEY) in the environment.

Below this docstring, the README's 3.x example as it stands (tests/unit/test_readme_examples.py keeps
them equal). Runs in the SDK's own virtualenv; prints the answer.
"""

import os

from together import Together

client = Together(
    base_url=os.environ["TOGETHER_BASE_URL"].removesuffix("/v1"),  # together>=3 adds /v1 itself
    api_key=os.environ["TOGETHER_API_KEY"],
)
reply = client.chat.completions.create(
    model=os.environ["TOGETHER_MODEL"],
    messages=[{"role": "user", "content": "Hello!"}],
)
print(reply.choices[0].message.content)

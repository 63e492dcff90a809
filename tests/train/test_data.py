"""Descriptions of evaluation and training data for logs and metrics files."""

import pytest

from fergen_train.data import describe_shards


@pytest.mark.parametrize("urls, expected", [
    (["out/shard-000000.tar"], "shard out/shard-000000.tar"),
    (["out/shard-000000.tar", "out/shard-000001.tar", "out/shard-000002.tar", "out/shard-000003.tar"],
     "4 shards in out/"),
    (["/data/out/a.tar", "/data/out/b.tar"], "2 shards in /data/out/"),
    (["a.tar", "b.tar"], "2 shards in ./"),
    (["one/a.tar", "two/b.tar", "two/c.tar"], "3 shards: one/a.tar to two/c.tar"),
    (["https://host/x/a.tar", "https://host/x/b.tar"], "2 shards in https://host/x/"),
])
def test_describe_shards(urls, expected):
    assert describe_shards(urls) == expected

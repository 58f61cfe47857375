"""Corpus encoding, exact and approximate search, and top-k merging.

| module            | what it holds                                                         |
|-------------------|-----------------------------------------------------------------------|
| base.py           | the Searcher contract, input checks, recall_at_k                      |
| exact.py          | exact top-k in numpy (the reference), ExactSearcher                   |
| device_search.py  | exact top-k with the corpus sharded over the mesh (DeviceSearcher)    |
| scann_index.py    | ScaNN tree + AH + reorder: build (with recall), save, load, search    |
| host_search.py    | exact search with each host holding only its rows (HostShardSearcher) |
| merge.py          | top-k merge of shard/host results, ShardedSearcher                    |
| searchers.py      | build_searcher(kind, ...), build_searcher_from_shards, load_searcher  |
| encode.py         | encode_corpus: partitioned, resumable encoding to embedding shards    |
| shards.py         | shard files and manifests, EmbeddingShards, one host's StackedRows    |
| model_encoders.py | encode_fn adapters for a model's embed_passages / embed_queries       |
| clustered.py      | random clustered embeddings for tests and benchmarks                  |

Every searcher answers ``search(queries [Q, D], k) -> (scores float32 [Q, k], rows int64
[Q, k])`` sorted by descending score; the exact ones break ties by the lower row id.
"""

"""`clqa synth linked_paragraphs` on the mini corpus: LEXA topic groups of distinct languages,
every document its topic's article's first paragraph, a topic's documents consecutive in one
shard, counts in the manifest, a rerun skipped."""
import collections
import glob
import json
import os

from clqa_jax.data import topic_groups
from clqa_jax.data import wikipedia
from clqa_jax.synth import config as config_lib
from clqa_jax.synth import stages

LANGS = ("en", "ar", "bn", "fi", "ja", "ko", "ru", "te")


def _articles():
  """(lang, title) -> article text, straight from the corpus files."""
  out = {}
  for lang in LANGS:
    for path in wikipedia.article_files(os.path.join(config_lib.MINIWIKI_DIR, "articles", lang)):
      for a in wikipedia.read_articles(path, lang):
        out[(lang, a.title)] = a.text
  return out


def test_linked_paragraphs_on_the_mini_corpus(tmp_path):
  cfg = config_lib.SynthConfig(output_dir=str(tmp_path), langs=LANGS, num_shards=2)
  result = stages.run_linked_paragraphs(cfg)
  assert not result["skipped"]
  shards = sorted(glob.glob(str(tmp_path / "linked_paragraphs" / "paragraphs.jsonl-*")))
  assert [os.path.basename(s) for s in shards] == ["paragraphs.jsonl-00000-of-00002",
                                                    "paragraphs.jsonl-00001-of-00002"]
  articles = _articles()
  links = wikipedia.read_langlinks(os.path.join(config_lib.MINIWIKI_DIR, "langlinks.tsv"))
  titles = collections.defaultdict(dict)   # topic -> lang -> title
  for link in links:
    titles[link.en_title][link.lang] = link.title
  for lang, title in articles:
    if lang == "en":
      titles[title]["en"] = title

  groups = [g for s in shards for g in topic_groups.read_topic_groups(s)]
  topics = [g[0].topic_id for g in groups]
  assert len(topics) == len(set(topics))        # one group per topic: never split over shards
  for group in groups:
    langs = [d.lang for d in group]
    assert len(langs) == len(set(langs)) >= 2
    for d in group:
      assert titles[d.topic_id][d.lang] == d.title          # the topic's article in that language
      text = articles[(d.lang, d.title)]
      assert d.text == " ".join(text.split("\n")[0].split())   # its first paragraph
      assert "<a href" not in d.text

  # Every topic with articles in two or more languages is there, with all of them.
  expected = {t: {l for l, title in by_lang.items() if (l, title) in articles}
              for t, by_lang in titles.items()}
  single = sum(len(ls) == 1 for ls in expected.values())
  expected = {t: ls for t, ls in expected.items() if len(ls) >= 2}
  assert {g[0].topic_id: {d.lang for d in g} for g in groups} == expected

  manifest = json.loads((tmp_path / "linked_paragraphs" / "MANIFEST.json").read_text())
  docs = collections.Counter(d.lang for g in groups for d in g)
  assert manifest["counts"]["documents"] == dict(sorted(docs.items()))
  sizes = collections.Counter(f"{len(g)} languages" for g in groups)
  assert manifest["counts"]["groups"] == dict(sorted(sizes.items()))
  assert manifest["counts"].get("dropped", {}) == ({"single_language": single} if single else {})
  assert stages.run_linked_paragraphs(cfg)["skipped"]

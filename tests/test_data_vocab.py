"""`clqa vocab train`: a small mT5-style SentencePiece model (no TF import)."""
import os
import sys

import sentencepiece as spm
from fake_gcs import fake_gcs, object_paths  # noqa: F401  (fake_gcs is a fixture)

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "fixtures", "data"))
import tiny_vocab  # noqa: E402

from clqa_jax import fileio  # noqa: E402
from clqa_jax.cli import main  # noqa: E402
from clqa_jax.data import spm_train  # noqa: E402


def test_vocab_train_cli(tmp_path, capsys):
  text = tmp_path / "text.txt"
  text.write_text("\n".join(tiny_vocab.fixture_sentences()), encoding="utf-8")
  out = str(tmp_path / "v" / "spm.model")
  assert main.main(["vocab", "train", "--input", str(text), "--vocab_size", "900", "--out", out]) == 0
  assert "900 pieces" in capsys.readouterr().out
  sp = spm.SentencePieceProcessor(model_file=out)
  assert (sp.vocab_size(), sp.pad_id(), sp.eos_id(), sp.unk_id(), sp.bos_id()) == (900, 0, 1, 2, -1)
  # Byte fallback: an unseen character is spelled in bytes, never UNK.
  ids = sp.encode("question: 𝄞 Ꙭ")
  assert 2 not in ids and sp.decode(ids) == "question: 𝄞 Ꙭ"
  assert os.path.exists(out[:-len(".model")] + ".vocab")
  # No accidental overwrite; a too-small vocabulary is a clear error.
  assert main.main(["vocab", "train", "--input", str(text), "--out", out]) == 2
  assert "exists" in capsys.readouterr().err
  assert main.main(["vocab", "train", "--input", str(text), "--vocab_size", "100",
                    "--out", str(tmp_path / "small.model")]) == 2
  assert "Vocabulary size" in capsys.readouterr().err


def test_vocab_train_cli_gs_paths(fake_gcs, capsys):
  """Input and output on gs://: SentencePiece gets local copies; the model is copied back."""
  fileio.atomic_write("gs://bucket/text.txt", "\n".join(tiny_vocab.fixture_sentences()))
  out = "gs://bucket/v/spm.model"
  assert main.main(["vocab", "train", "--input", "gs://bucket/text.txt", "--vocab_size", "900",
                    "--out", out]) == 0
  assert f"wrote {out}: 900 pieces" in capsys.readouterr().out
  assert object_paths(fake_gcs) == ["gs://bucket/text.txt", out, "gs://bucket/v/spm.vocab"]
  sp = spm_train.load_processor(out)
  assert sp.vocab_size() == 900 and sp.decode(sp.encode("question: Ꙭ")) == "question: Ꙭ"
  assert main.main(["vocab", "train", "--input", "gs://bucket/text.txt", "--out", out]) == 2
  assert "exists" in capsys.readouterr().err
  assert main.main(["vocab", "train", "--input", "gs://bucket/missing.txt", "--out",
                    "gs://bucket/w/spm.model"]) == 2
  assert "--input gs://bucket/missing.txt: no such file" in capsys.readouterr().err

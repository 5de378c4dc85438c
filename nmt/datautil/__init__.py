"""The datautil step: corpus reading, normalization, tokenization and vocabularies.

Nothing here imports from the model, training or decoding layers. The entry points are
:func:`nmt.datautil.corpus.read_parallel`, :class:`nmt.datautil.pipeline.TextProcessor` and
:func:`nmt.datautil.build.build_vocab`; submodules are imported directly (this package module
stays empty so that ``import nmt.datautil.vocab`` does not pull in jieba or sentencepiece).
"""

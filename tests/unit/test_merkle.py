"""RFC 6962 hashing and proofs: every index and size pair of small trees, and tampering."""

from __future__ import annotations

import hashlib

import pytest

from vault.protocol import merkle


def _tree(n: int) -> tuple[merkle.MemoryTree, list[bytes]]:
    tree = merkle.MemoryTree()
    leaves = [merkle.leaf_hash(f"entry {i}".encode()) for i in range(n)]
    for leaf in leaves:
        tree.append(leaf)
    return tree, leaves


def test_known_answer_for_rfc6962_hashing() -> None:
    assert merkle.EMPTY_ROOT.hex() == hashlib.sha256(b"").hexdigest()
    assert merkle.leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    a, b = merkle.leaf_hash(b"a"), merkle.leaf_hash(b"b")
    assert merkle.root_of([a, b]) == hashlib.sha256(b"\x01" + a + b).digest()


@pytest.mark.parametrize("size", range(1, 34))
def test_stored_subtrees_give_the_reference_root(size: int) -> None:
    tree, leaves = _tree(size)
    assert tree.root() == merkle.root_of(leaves)


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 8, 9, 16, 17, 31])
def test_every_inclusion_proof_verifies_and_tampering_fails(size: int) -> None:
    tree, leaves = _tree(size)
    root = tree.root()
    for index in range(size):
        proof = merkle.inclusion_proof(index, size, tree.subtree)
        merkle.verify_inclusion(leaves[index], index, size, proof, root)
        other = leaves[(index + 1) % size] if size > 1 else merkle.leaf_hash(b"x")
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(other, index, size, proof, root)
        if proof:
            bad = [bytes(32), *proof[1:]]
            with pytest.raises(merkle.ProofError):
                merkle.verify_inclusion(leaves[index], index, size, bad, root)


@pytest.mark.parametrize("new_size", [1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17, 32, 33])
def test_every_consistency_proof_verifies_and_forks_fail(new_size: int) -> None:
    tree, _ = _tree(new_size)
    for old_size in range(1, new_size + 1):
        proof = merkle.consistency_proof(old_size, new_size, tree.subtree)
        merkle.verify_consistency(old_size, new_size, proof, tree.root(old_size), tree.root())
    forked, _ = _tree(new_size)
    forked.levels = [list(level) for level in forked.levels]
    if new_size > 1:
        fork = merkle.MemoryTree()
        for i in range(new_size):
            fork.append(merkle.leaf_hash(f"entry {i}".encode() if i else b"rewritten"))
        proof = merkle.consistency_proof(1, new_size, fork.subtree)
        with pytest.raises(merkle.ProofError):
            merkle.verify_consistency(1, new_size, proof, tree.root(1), fork.root())

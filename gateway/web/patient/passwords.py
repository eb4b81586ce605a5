"""Password strength for patient accounts: at least 12 characters and not trivially guessable.

NIST SP 800-63B §5.1.1.2: a minimum length, and a check against common and context-specific
passwords instead of composition rules.
"""

from __future__ import annotations

import itertools

MIN_LENGTH = 12
MAX_LENGTH = 256

_COMMON = frozenset("""
123456789012 1234567890123 12345678910 azertyuiop azertyuiopqs azertyuiop123 qwertyuiop qwertyuiop123
motdepasse motdepasse1 motdepasse12 motdepasse123 motdepasse1234 monmotdepasse password1234 passwordpassword
password123456 jetaime123456 soleil123456 bonjour123456 marseille13 doudou123456 chouchou1234 loulou123456
azerty123456 azertyazerty qwertyqwerty abcdefghijkl abcdef123456 123456abcdef 000000000000 111111111111
123123123123 azerty1234567 iloveyou1234 admin1234567 administrateur utilisateur messagerie messageriesante
monespacesante espacesante santesante motdepassesante 1234567890ab
""".split())


def strength_problem(password: str, *, ins: str | None = None) -> str | None:
    """``None`` when the password is acceptable, else the reason in French for the patient."""
    if len(password) < MIN_LENGTH:
        return f"Le mot de passe doit contenir au moins {MIN_LENGTH} caractères."
    if len(password) > MAX_LENGTH:
        return f"Le mot de passe doit contenir au plus {MAX_LENGTH} caractères."
    folded = password.casefold()
    compact = "".join(c for c in folded if not c.isspace())
    if compact in _COMMON or folded in _COMMON:
        return "Ce mot de passe est trop courant. Choisissez une phrase ou une suite de mots personnelle."
    if len(set(compact)) <= 3:
        return "Ce mot de passe répète trop peu de caractères différents."
    if _is_sequence(compact):
        return "Ce mot de passe est une suite trop simple (comme 123456… ou abcdef…)."
    if ins and ins.casefold() in compact:
        return "Le mot de passe ne doit pas contenir votre numéro INS."
    if compact.isdigit():
        return "Le mot de passe ne doit pas être composé uniquement de chiffres."
    return None


def _is_sequence(text: str) -> bool:
    steps = {ord(b) - ord(a) for a, b in itertools.pairwise(text)}
    return len(steps) == 1 and steps.pop() in (-1, 0, 1)

"""The patient's access history, read from the audit trail (SPEC §9): every entry whose
subject is ``patient:<id>``, worded in French; never any content.

Entries about a patient are stored sealed under the patient's data key and found by a keyed
index (issue 20, :mod:`gateway.store.audit_links`): they are opened here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from gateway.store import audit_links
from gateway.store.audit_checkpoints import last_pruned_at
from gateway.store.audit_links import Opened
from gateway.store.keys import KeyService

PAGE = 100

ACTIONS = {
    "patient.login": "Connexion à votre espace",
    "patient.login_failed": "Tentative de connexion échouée",
    "patient.logout": "Déconnexion",
    "patient.activate": "Activation de votre espace",
    "patient.activation_started": "Code d'activation saisi",
    "patient.activation_failed": "Code d'activation refusé",
    "patient.oppose": "Opposition à la création de l'espace",
    "patient.oppose_failed": "Opposition refusée",
    "patient.provision": "Création de votre espace",
    "patient.show": "Consultation de la fiche de votre espace par un administrateur",
    "admin.patient.lookup": "Consultation de la fiche de votre espace par un administrateur",
    "patient.notify": "Avis de nouveau message envoyé à votre adresse personnelle",
    "patient.mdn_sent": "Accusé de lecture envoyé à l'expéditeur",
    "patient.export": "Export de vos données",
    "patient.close": "Fermeture de votre espace",
    "patient.deletion_requested": "Demande de suppression de vos données",
    "patient.password_changed": "Changement de mot de passe",
    "patient.totp_reset": "Nouvelle application de double authentification",
    "patient.settings": "Modification des avis par courriel",
    "mail.deliver": "Message reçu",
    "mail.sent": "Message envoyé",
    "web.csrf_refused": "Action refusée (formulaire expiré ou venu d'un autre site)",
    "patient.recover": ("Nouveau mot de passe et nouvelle application d'authentification enregistrés avec un "
                        "code d'activation ; toutes les sessions ouvertes ont été fermées"),
    "mediator.patient.lookup": "Consultation de l'état de votre espace par un médiateur",
}
# Who issued a new activation code (``gateway.operations.recovery``), by the actor's kind.
NEW_CODE = {
    "mediator": "Un médiateur a émis un nouveau code d'activation",
    "admin": "Un administrateur a émis un nouveau code d'activation",
    "anonymous": "Nouveau code d'activation demandé (« Mot de passe oublié »)",
}
RECOVERY_REFUSED = {
    "no_email": "aucune adresse personnelle n'est enregistrée, aucun code envoyé",
    "too_soon": "un code a déjà été envoyé il y a peu, aucun nouvel envoi",
    "state": "l'état de votre espace ne le permet pas, aucun code envoyé",
}
WEB_ACTIONS = {
    "inbox": "Consultation de la boîte de réception", "conversation.view": "Consultation d'une conversation",
    "message.view": "Lecture d'un message", "attachment.download": "Téléchargement d'une pièce jointe",
    "document.view": "Consultation d'un document de santé", "document.pdf": "Ouverture d'un document de santé (PDF)",
    "documents": "Consultation de « Mes documents »", "trash": "Consultation de la corbeille",
    "search": "Recherche dans vos messages",
    "reply": "Envoi d'une réponse", "logout": "Déconnexion", "myspace": "Consultation de « Mon espace »",
    "history": "Consultation de l'historique des accès", "export": "Export de vos données",
    "enrol.password": "Activation : choix du mot de passe", "enrol.totp": "Activation : double authentification",
}


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    what: str
    who: str
    where: str


def describe_action(action: str) -> str:
    if action in ACTIONS:
        return ACTIONS[action]
    if action.startswith("web."):
        name = action[4:]
        if name in WEB_ACTIONS:
            return WEB_ACTIONS[name]
        if name.startswith("message."):
            return "Gestion d'un message (corbeille, lu/non lu, suppression)"
        if name.startswith("myspace."):
            return "Modification de vos réglages"
        return "Page de votre espace"
    if action.startswith("admin.") or action.startswith("patient."):
        return f"Action d'administration ({action})"
    return action


def describe_actor(actor: str, patient_id: int) -> str:
    if actor == f"patient:{patient_id}":
        return "Vous"
    kind, _, rest = actor.partition(":")
    if kind == "pro":
        return f"Professionnel {rest}"
    if kind == "trusted":
        return f"Professionnel de l'opérateur {rest}"
    if kind == "admin":
        return "Administrateur de la messagerie"
    if kind == "mediator":
        return "Médiateur numérique"
    if actor.startswith("system"):
        return "La messagerie (automatique)"
    if kind == "system":
        return "La messagerie (automatique)"
    if kind == "anonymous":
        return "Personne non connectée"
    return actor


def describe_recovery(action: str, entry: Opened) -> str | None:
    """The account-recovery entries, worded by who acted and how the code travelled."""
    if action == "patient.new_code":
        what = NEW_CODE.get(entry.actor.partition(":")[0], "Nouveau code d'activation émis")
        if entry.details_dict().get("delivery") == "mail":
            what += " (envoyé à votre adresse personnelle)"
        return what
    if action == "patient.recovery_refused":
        reason = RECOVERY_REFUSED.get(str(entry.details_dict().get("reason")), "aucun code envoyé")
        return f"Demande de nouveau code (« Mot de passe oublié ») : {reason}"
    return None


def entries(session: Session, keys: KeyService, patient_id: int, *, mailbox_id: int | None = None,
            before: int | None = None) -> tuple[list[HistoryEntry], int | None]:
    """One page of the history, newest first, and the id to continue from (or None);
    ``mailbox_id``: the patient's mailbox, when the caller has it."""
    found, more = audit_links.entries_about(session, keys, patient_id, mailbox_id=mailbox_id, subject_only=True,
                                            before=before, limit=PAGE)
    rows = []
    for e, opened in found:
        what = describe_recovery(e.action, opened) or describe_action(e.action)
        if e.action.startswith("web."):
            what += " (envoi de formulaire)" if opened.details_dict().get("method") == "POST" else ""
        rows.append(HistoryEntry(e.at, what, describe_actor(opened.actor, patient_id), opened.peer or "—"))
    return rows, more


def archived_until(session: Session) -> datetime | None:
    """The time of the last entry pruned by audit retention (older accesses are in export files)."""
    return last_pruned_at(session)

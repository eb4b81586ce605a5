"""``gateway domain hosted ...`` and ``gateway domain trust ...``."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crypto.dkim_keys import KEY_TYPES, dns_txt_record, generate_dkim_key, zone_record
from gateway.accounts.signing_keys import ensure_key, published
from gateway.app.cli import imports
from gateway.app.cli.common import Leaf, Node, UserError, actor, emit_json, emit_table, services, translate_errors
from gateway.operations import client_dns, hosted, trust
from gateway.operations.common import cli_actor
from gateway.store.services import Services
from routing.address import InvalidAddress, normalise_domain

DKIM_HELP = ("where the domain's DKIM keys come from: dns, none (not checked), or pinned:SELECTOR:KEYFILE, "
             "KEYFILE holding a PEM public key, the TXT record as opendkim-genkey writes it (the .txt file) "
             "or the bare p= value; RSA or Ed25519")
DKIM_REQUIRED_HELP = ("require a passing DKIM signature even when the operator certificate (--dn) authenticates "
                      "the connection")


MAX_CONNECTIONS_HELP = ("connections each of the operator's addresses (--networks) may hold on the MX, instead of "
                        "limits.mx_per_address (Postfix opens up to 20 per destination)")
NETWORKS_HELP = "the operator's sending addresses: IP addresses or CIDR networks, separated by commas or spaces"


def register(node: Node, leaf: Leaf) -> None:
    domain = node("domain", "manage hosted domains and the trust list")
    hosted = domain.add_parser("hosted", help="domains whose professionals have accounts here")
    hosted_sub = hosted.add_subparsers(dest="hosted_command", metavar="SUBCOMMAND", required=True)
    p = leaf(hosted_sub, "add", "add a hosted domain (generates its DKIM key)", cmd_hosted_add)
    p.add_argument("domain")
    p.add_argument("--selector", help="DKIM selector (default: hmg<YYYYMM>)")
    p.add_argument("--key-type", choices=KEY_TYPES, default="rsa",
                   help="rsa (2048 bits, the default: every receiver verifies it) or ed25519 (RFC 8463: "
                        "receivers that do not know it ignore the signature)")
    p = leaf(hosted_sub, "list", "list hosted domains", cmd_hosted_list)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = leaf(hosted_sub, "dkim", "print the DNS TXT records that publish the DKIM keys the gateway signs with: "
                                 "every hosted domain's, the patient domain's and the host name's (made now "
                                 "if missing: read receipts, patients' replies, DSNs and notifications)",
             cmd_hosted_dkim)
    p.add_argument("domain", nargs="?", help="only this domain's record (a hosted domain, the patient domain or "
                                             "the host name)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = leaf(hosted_sub, "dns", "print a hosted domain's DNS records in zone-file syntax: MX hint, RFC 6186 / "
                                "RFC 8314 SRV records for IMAP and submission, the autoconfig and autodiscover "
                                "CNAMEs and the DKIM TXT record", cmd_hosted_dns)
    p.add_argument("domain")

    trust = domain.add_parser("trust", help="the trust list: remote domains allowed to exchange mail")
    trust_sub = trust.add_subparsers(dest="trust_command", metavar="SUBCOMMAND", required=True)
    p = leaf(trust_sub, "add", "add a trusted domain", cmd_trust_add)
    p.add_argument("domain")
    p.add_argument("--description", metavar="T")
    p.add_argument("--dn", "--cert-dn", metavar="DN", help="operator certificate subject DN the peer must present")
    p.add_argument("--route", metavar="HOST:PORT", help="deliver here instead of the DNS MX")
    p.add_argument("--dkim", metavar="POLICY", default="dns", help=DKIM_HELP + " (default: dns)")
    p.add_argument("--dkim-required", action="store_true", help=DKIM_REQUIRED_HELP)
    p.add_argument("--no-tls-required", action="store_true",
                   help="private link: no TLS, From: aligned on the envelope sender (tests, dedicated lines)")
    p.add_argument("--max-size", type=int, metavar="BYTES", help="largest message accepted from/to this domain")
    p.add_argument("--max-connections", metavar="N", help=MAX_CONNECTIONS_HELP)
    p.add_argument("--networks", metavar="CIDR,...", help=NETWORKS_HELP)
    p = leaf(trust_sub, "set", "edit a trusted domain in place (one transaction: never untrusted in between); "
                               "only the options given change, an empty value clears the field", cmd_trust_set)
    p.add_argument("domain")
    p.add_argument("--description", metavar="T")
    p.add_argument("--dn", "--cert-dn", metavar="DN", help="operator certificate subject DN the peer must present")
    p.add_argument("--route", metavar="HOST:PORT", help="deliver here instead of the DNS MX ('' for the DNS MX)")
    p.add_argument("--dkim", metavar="POLICY", help=DKIM_HELP)
    required = p.add_mutually_exclusive_group()
    required.add_argument("--dkim-required", dest="dkim_required", action="store_const", const=True, default=None,
                          help=DKIM_REQUIRED_HELP)
    required.add_argument("--no-dkim-required", dest="dkim_required", action="store_const", const=False,
                          help="the operator certificate suffices (the default; DKIM is still required when no "
                               "certificate DN is bound)")
    tls = p.add_mutually_exclusive_group()
    tls.add_argument("--tls-required", dest="tls_required", action="store_const", const=True, default=None,
                     help="require TLS (the default for a new entry)")
    tls.add_argument("--no-tls-required", dest="tls_required", action="store_const", const=False,
                     help="private link: no TLS, From: aligned on the envelope sender")
    p.add_argument("--max-size", metavar="BYTES", help="largest message accepted from/to this domain ('none': no "
                                                       "limit of its own)")
    p.add_argument("--max-connections", metavar="N", help=MAX_CONNECTIONS_HELP + " ('none': the default)")
    p.add_argument("--networks", metavar="CIDR,...", help=NETWORKS_HELP + " ('' for none)")
    p = leaf(trust_sub, "list", "list the trust list", cmd_trust_list)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = leaf(trust_sub, "remove", "remove a trusted domain", cmd_trust_remove)
    p.add_argument("domain")
    p = leaf(trust_sub, "suspend", "suspend a trusted domain (mail refused until resumed)", cmd_trust_status)
    p.add_argument("domain")
    p.set_defaults(status="suspended")
    p = leaf(trust_sub, "resume", "resume a suspended trusted domain", cmd_trust_status)
    p.add_argument("domain")
    p.set_defaults(status="active")
    imports.register_trust(trust_sub, leaf)


def _domain(value: str) -> str:
    with translate_errors():
        return normalise_domain(value)


def cmd_hosted_add(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    private_pem, public_b64 = generate_dkim_key(key_type=args.key_type)
    with services(args) as svc, svc.db.write() as session:
        done = hosted.add(session, svc.keys, cli_actor(), args.domain, now=now, private_pem=private_pem,
                          public_b64=public_b64, selector=args.selector or hosted.default_selector(now))
    name = done["domain"]
    print(f"hosted domain {name} added; publish its DKIM key with: gateway domain hosted dkim {name}")
    return 0


def cmd_hosted_list(args: argparse.Namespace) -> int:
    with services(args) as svc, svc.db.read() as session:
        rows = hosted.list_hosted(session)
    if args.json:
        emit_json(rows)
    else:
        emit_table(rows, ["domain", "dkim_selector", "created_at"])
    return 0


def _gateway_domains(svc: Services) -> dict[str, str]:
    """The domains the gateway writes mail from without hosting them (keys in ``dkim_keys``),
    each with what it signs."""
    roles: dict[str, list[str]] = {}
    for value, role in ((svc.settings.domains.patient_domain, "patient domain (read receipts, patients' replies)"),
                        (svc.settings.server.hostname, "host name (DSNs, notifications)")):
        try:
            roles.setdefault(normalise_domain(value), []).append(role)
        except InvalidAddress:
            continue
    return {name: ", ".join(what) for name, what in roles.items()}


def cmd_hosted_dkim(args: argparse.Namespace) -> int:
    wanted = _domain(args.domain) if args.domain else None
    with services(args) as svc, svc.db.write() as session:
        own = _gateway_domains(svc)
        for name in own:
            if wanted is None or wanted == name:
                ensure_key(session, svc.keys, name, actor=actor())  # to publish before the first signed message
        found = [k for k in published(session) if wanted is None or k.domain == wanted]
    if wanted is not None and not found:
        raise UserError(f"{wanted} is neither a hosted domain with a DKIM key, nor the patient domain, nor the "
                        "host name")
    rows = [(k, "hosted domain" if k.source == "hosted" else own.get(k.domain, "gateway key")) for k in found]
    if args.json:
        emit_json([{"domain": k.domain, "selector": k.selector, "key_type": k.key_type,
                    "name": f"{k.selector}._domainkey.{k.domain}", "value": dns_txt_record(k.public_key),
                    "signs": signs} for k, signs in rows])
        return 0
    for key, signs in rows:
        print(f"; {key.domain}: {signs}")
        print(zone_record(key.selector, key.domain, key.public_key, key.key_type))
    return 0


def cmd_hosted_dns(args: argparse.Namespace) -> int:
    with services(args) as svc, svc.db.read() as session:
        try:
            plan = client_dns.plan_for(session, svc.settings, args.domain)
        except client_dns.NotHosted as exc:
            raise UserError(str(exc)) from None
    print("\n".join(client_dns.zone_lines(plan)))
    return 0


def read_pubkey_file(path: Path) -> str:
    """The text of a public key file (PEM, a DKIM TXT record or bare base64: the operation reads it)."""
    try:
        return path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read public key file ({exc.__class__.__name__})") from None


def _dkim_fields(policy: str) -> dict[str, Any]:
    """``--dkim dns|none|pinned:SELECTOR:KEYFILE`` as the operations' fields."""
    if policy in ("dns", "none"):
        return {"dkim_policy": policy}
    parts = policy.split(":", 2)
    if len(parts) != 3 or parts[0] != "pinned" or not parts[1] or not parts[2]:
        raise UserError(f"--dkim: expected dns, none or pinned:SELECTOR:PUBKEYFILE, got {policy!r}")
    return {"dkim_policy": "pinned", "dkim_selector": parts[1],
            "dkim_public_key": read_pubkey_file(Path(parts[2]))}


def cmd_trust_add(args: argparse.Namespace) -> int:
    data: dict[str, Any] = {"name": args.domain, "description": args.description, "operator_dn": args.dn,
                            "route": args.route, "tls_required": not args.no_tls_required,
                            "max_message_size": args.max_size, "dkim_required": args.dkim_required,
                            **_dkim_fields(args.dkim)}
    data.update({k: v for k, v in (("max_connections", args.max_connections), ("networks", args.networks))
                 if v is not None})
    with services(args) as svc, svc.db.write() as session:
        done = trust.add(session, cli_actor(), data, now=datetime.now(UTC))
    print(f"trusted domain {done['name']} added")
    return 0


def cmd_trust_set(args: argparse.Namespace) -> int:
    data: dict[str, Any] = {field: value for field, value in (
        ("description", args.description), ("operator_dn", args.dn), ("route", args.route),
        ("tls_required", args.tls_required)) if value is not None}
    if args.dkim is not None:
        data.update(_dkim_fields(args.dkim))
    if args.dkim_required is not None:
        data["dkim_required"] = args.dkim_required
    if args.max_size is not None:
        data["max_message_size"] = "" if args.max_size.lower() == "none" else args.max_size
    if args.max_connections is not None:
        data["max_connections"] = "" if args.max_connections.lower() == "none" else args.max_connections
    if args.networks is not None:
        data["networks"] = args.networks
    if not data:
        raise UserError("nothing to change: give at least one option (see 'gateway domain trust set --help')")
    with services(args) as svc, svc.db.write() as session:
        done = trust.update(session, cli_actor(), args.domain, data, now=datetime.now(UTC))
    changed = ", ".join(done["changed"])
    print(f"trusted domain {done['name']}: " + (f"changed {changed}" if changed else "nothing changed"))
    return 0


def _shown(r: dict[str, Any]) -> dict[str, Any]:
    """An operation's row as the command line lists it (``dkim``: the policy, with the pinned selector)."""
    return {"domain": r["name"], "status": r["status"], "description": r["description"],
            "operator_dn": r["operator_dn"],
            "dkim": r["dkim_policy"] + (f":{r['dkim_selector']}" if r["dkim_policy"] == "pinned" else ""),
            "dkim_required": r["dkim_required"], "route": r["route"], "tls_required": r["tls_required"],
            "max_message_size": r["max_message_size"],
            "max_connections": r["max_connections"], "networks": r["networks"], "origin": r["origin"],
            "updated_at": r["modified_at"]}


def cmd_trust_list(args: argparse.Namespace) -> int:
    with services(args) as svc, svc.db.read() as session:
        rows = [_shown(r) for r in trust.list_trusted(session)]
    if args.json:
        emit_json(rows)
    else:
        emit_table(rows, ["domain", "status", "dkim", "dkim_required", "route", "tls_required", "max_connections",
                          "description"])
    return 0


def cmd_trust_remove(args: argparse.Namespace) -> int:
    with services(args) as svc, svc.db.write() as session:
        done = trust.remove(session, cli_actor(), args.domain, now=datetime.now(UTC))
    print(f"trusted domain {done['name']}: removed")
    return 0


def cmd_trust_status(args: argparse.Namespace) -> int:
    with services(args) as svc, svc.db.write() as session:
        done = trust.set_status(session, cli_actor(), args.domain, args.status, now=datetime.now(UTC))
    print(f"trusted domain {done['name']}: {'suspended' if args.status == 'suspended' else 'resumed'}")
    return 0

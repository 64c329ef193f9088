"""Builds the domain services from main.json: one place where stores meet the domain.

Used by the processes and by aktool alike. Connections and the bundled databases are made
once per process and shared.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from pymongo import MongoClient
from pymongo.database import Database

from altcraft.bundled.badpass import BadPass
from altcraft.bundled.geodb import GeoDB
from altcraft.bundled.sexdb import SexDB
from altcraft.config import MainConfig
from altcraft.domain.accounts import Accounts
from altcraft.domain.admins import Admins
from altcraft.domain.databases import Databases
from altcraft.domain.passwords import PasswordPolicy
from altcraft.domain.profiles import Enricher, Profiles
from altcraft.domain.tokens import Tokens
from altcraft.domain.users import Users
from altcraft.stores import documents


class Platform:
    def __init__(self, config: MainConfig):
        self.config = config

    # -- stores ------------------------------------------------------------------------
    @cached_property
    def control_client(self) -> MongoClient:
        return documents.connect(self.config, "control")

    @cached_property
    def account_client(self) -> MongoClient:
        if documents.mongo_uri(self.config, "account") == documents.mongo_uri(self.config, "control"):
            return self.control_client
        return documents.connect(self.config, "account")

    @cached_property
    def control(self) -> Database:
        return documents.control_db(self.control_client, self.config)

    def account_db(self, account_id: int) -> Database:
        return documents.account_db(self.account_client, self.config, account_id)

    # -- bundled databases ---------------------------------------------------------------
    @cached_property
    def password_policy(self) -> PasswordPolicy:
        return PasswordPolicy(BadPass(self.config.BADPASS_PATH or None), self.config.PASSWORD_MIN_LENGTH)

    @cached_property
    def enricher(self) -> Enricher:
        return Enricher(SexDB(self.config.SEXDB_PATH or None), GeoDB(self.config.GEODB_PATH or None),
                        self.config.DEFAULT_PHONE_REGION)

    # -- domain services -----------------------------------------------------------------
    @cached_property
    def accounts(self) -> Accounts:
        return Accounts(self.control)

    @cached_property
    def users(self) -> Users:
        return Users(self.control, self.password_policy)

    @cached_property
    def admins(self) -> Admins:
        return Admins(self.control, self.password_policy)

    @cached_property
    def directory(self):
        """The directory of WEBADMIN_LDAP (None when it is not enabled)."""
        if not self.config.WEBADMIN_LDAP.ENABLE:
            return None
        from altcraft.stores.directory import Directory
        return Directory(self.config.WEBADMIN_LDAP)

    def admin_sign_in(self, on_change=None):
        """Local administrators, then the directory (domain/admin_signin.py); `on_change` hears
        of each directory administrator's record made, changed or deactivated."""
        from altcraft.domain.admin_signin import AdminSignIn
        return AdminSignIn(self.admins, self.directory, self.config.WEBADMIN_LDAP.ROLES, on_change)

    @cached_property
    def tokens(self) -> Tokens:
        return Tokens(self.control)

    def databases(self, account_id: int) -> Databases:
        return Databases(self.account_db(account_id))

    def profiles(self, account_id: int, db_id: int) -> Profiles:
        database = self.databases(account_id).get(db_id)
        lookup = "scan" if self.config.DOCUMENTS_ENGINE == "ferretdb" else "index"
        return Profiles(self.account_db(account_id), database, self.enricher, lookup)

    @cached_property
    def campaigns(self):
        from altcraft.domain.campaigns import Campaigns
        return Campaigns(self.control)

    @cached_property
    def senders(self):
        from altcraft.domain.senders import Senders
        return Senders(self.control)

    @cached_property
    def mta_rules(self):
        from altcraft.domain.mta_rules import MtaRules
        return MtaRules(self.control)

    @cached_property
    def vsenders(self):
        from altcraft.domain.vsenders import VSenders
        return VSenders(self.control, self.senders)

    def check_campaign_refs(self, account_id: int, db_id: int | None = None, segment_id: int | None = None,
                            template_id: int | None = None, sender_id: int | None = None,
                            vsender_id: int | None = None, ab: Any = None) -> None:
        """Everything a campaign names must belong to the account (NotFound otherwise), an
        A/B test's variant templates included; the API and the panel both check through here."""
        if db_id is not None:
            self.databases(account_id).get(db_id)
        if segment_id is not None:
            self.segments(account_id).get(segment_id)
        if template_id is not None:
            self.templates(account_id).get(template_id)
        if sender_id is not None:
            self.senders.for_account(sender_id, account_id)
        if vsender_id is not None:
            self.vsenders.get(account_id, vsender_id)
        if isinstance(ab, dict) and isinstance(ab.get("variants"), list):
            for variant in ab["variants"]:  # a variant's template must be the account's too
                if isinstance(variant, dict) and isinstance(variant.get("template_id"), int):
                    self.templates(account_id).get(variant["template_id"])

    def import_jobs(self, account_id: int):
        from altcraft.domain.import_jobs import ImportJobs
        return ImportJobs(self.account_db(account_id), account_id, self.control)

    @cached_property
    def triggers(self):
        from altcraft.domain.triggers import Triggers
        return Triggers(self.control)

    @cached_property
    def scenarios(self):
        from altcraft.domain.scenarios import Scenarios
        return Scenarios(self.control)

    def condition_checker(self, account_id: int, db_id: int):
        """Checks a scenario branch's profile condition against the database's fields."""
        from altcraft.domain.databases import Databases
        from altcraft.domain.segments import Compiler
        database = Databases(self.account_db(account_id)).get(db_id)
        compiler = Compiler(database, account_id, self.activity_lookup, self.config.DEFAULT_PHONE_REGION)
        return lambda condition, where: compiler.compile(condition, where)

    def check_scenario_refs(self, account_id: int, db_id: int, nodes: Any) -> Any:
        """Every template and sender a send node names must be the account's (named by node)."""
        from altcraft.domain.errors import NotFound
        if isinstance(nodes, list):
            for node in nodes:
                if isinstance(node, dict) and node.get("type") == "send":
                    refs = {k: node.get(k) for k in ("template_id", "sender_id", "vsender_id")
                            if isinstance(node.get(k), int)}
                    try:
                        self.check_campaign_refs(account_id, db_id=db_id, **refs)
                    except NotFound as exc:
                        raise NotFound(f"node {node.get('id')!r}: {exc.message}") from None
        return nodes

    def scenario_node_checker(self, account_id: int, db_id: int):
        """What a scenario's nodes name (fields, segments, webhook endpoints) must be the account's."""
        from altcraft.domain import scenarios
        from altcraft.domain.databases import Databases
        database = Databases(self.account_db(account_id)).get(db_id)
        return scenarios.node_checker(database, self.segments(account_id).get,
                                      lambda endpoint_id: self.webhooks.get_doc(account_id, endpoint_id),
                                      self.config.DEFAULT_PHONE_REGION)

    @cached_property
    def publisher(self):
        """Confirmed publishing from request handlers (automation events, trigger jobs)."""
        from altcraft.stores.confirmed import ConfirmedPublisher
        return ConfirmedPublisher(self.config, "altcraft-api")

    @cached_property
    def webhooks(self):
        from altcraft.domain.netguard import AddressPolicy, parse_networks, system_resolve
        from altcraft.domain.webhooks import Endpoints
        policy = AddressPolicy(parse_networks(self.config.WEBHOOKS.ALLOW_NETWORKS))
        return Endpoints(self.control, policy, system_resolve)

    @cached_property
    def webhook_outbox(self):
        from altcraft.domain.webhooks import Outbox
        return Outbox(self.control, scale=self.config.WEBHOOKS.TIME_SCALE)

    def templates(self, account_id: int):
        from altcraft.domain.templates import Templates
        return Templates(self.account_db(account_id))

    def snapshots(self, account_id: int):
        from altcraft.domain.webversion import Snapshots
        return Snapshots(self.account_db(account_id))

    def segments(self, account_id: int):
        from altcraft.domain.segments import Segments
        return Segments(self.account_db(account_id), account_id, self.activity_lookup,
                        self.config.DEFAULT_PHONE_REGION)

    def activity_lookup(self, account_id: int, kinds: tuple[str, ...], campaign_id: int | None,
                        since) -> set[str]:
        """Profiles with these events (ClickHouse), for segment activity conditions."""
        from altcraft.stores.analytics import Analytics

        store = Analytics(self.config.CLICKHOUSE_SYSTEM)
        try:
            sql = (f"SELECT DISTINCT profile_id FROM {store.table('events')} WHERE account_id = %(a)s "
                   "AND kind IN %(k)s AND event_time >= %(since)s")
            params = {"a": account_id, "k": tuple(kinds), "since": since.replace(tzinfo=None)}
            if campaign_id is not None:
                sql += " AND campaign_id = %(c)s"
                params["c"] = campaign_id
            return {row[0] for row in store.execute(sql, params)}
        finally:
            store.close()

    def analytics(self):
        """This thread's ClickHouse client (the driver's client is not thread-safe)."""
        import threading

        from altcraft.stores.analytics import Analytics
        local = self.__dict__.setdefault("_analytics_local", threading.local())
        if not hasattr(local, "client"):
            local.client = Analytics(self.config.CLICKHOUSE_SYSTEM)
            self.__dict__.setdefault("_analytics_clients", []).append(local.client)
        return local.client

    @cached_property
    def journal(self):
        from altcraft.domain.audit import Journal
        return Journal(self.control, self.analytics)

    def drop_account_data(self, account_id: int) -> None:
        self.account_client.drop_database(self.account_db(account_id).name)

    def close(self) -> None:
        if "publisher" in self.__dict__:
            self.__dict__.pop("publisher").close()
        for name in ("control_client", "account_client"):
            client = self.__dict__.pop(name, None)
            if client is not None:
                client.close()
        for store in self.__dict__.pop("_analytics_clients", []):
            store.close()
        self.__dict__.pop("_analytics_local", None)

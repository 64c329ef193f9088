"""The v1.1 API through Flask's test client, as the integration tests call it."""

from __future__ import annotations

STRONG = "Correct-Horse-Battery-9"


class Client:
    def __init__(self, flask_client, token: str | None = None):
        self.http = flask_client
        self.token = token

    def __call__(self, path: str, token: str | None = None, **params):
        body = {**params, "token": token or self.token}
        response = self.http.post(f"/api/v1.1/{path}", json=body)
        return response.status_code, response.get_json()

    def ok(self, path: str, **params):
        status, body = self(path, **params)
        assert status == 200 and body["error"] == 0, (path, status, body)
        return body["data"]


def make_account(admin: Client, name: str) -> tuple[dict, Client]:
    """An account with an owner and a client holding the owner's token."""
    account = admin.ok("admin/accounts/save", name=name, tz="Europe/Moscow")
    user = admin.ok("admin/accounts/users/add", account_id=account["id"], login=f"{name}-owner", password=STRONG)
    token = admin.ok("admin/tokens/add", account_id=account["id"], user_id=user["id"])["token"]
    return account, Client(admin.http, token)

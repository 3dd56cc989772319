"""Roles and the permission checks every page and endpoint uses.

Roles are Django groups created by a migration (`accounts.0002_roles`). Staff
users are the admins: they pass every role check, but the four-eyes rules of
later features still apply to them.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from rest_framework.permissions import BasePermission

ViewFn = Callable[..., HttpResponse]


class Role(StrEnum):
    DATA_SCIENTIST = "data_scientist"
    BUSINESS_OWNER = "business_owner"
    APPROVER = "approver"


ROLE_LABELS = {
    Role.DATA_SCIENTIST: "Data scientist",
    Role.BUSINESS_OWNER: "Business owner",
    Role.APPROVER: "Approver",
}


def user_roles(user: Any) -> frozenset[str]:
    """The role names of `user`, cached on the instance for the request."""
    if not getattr(user, "is_authenticated", False):
        return frozenset()
    cached = getattr(user, "_opsportal_roles", None)
    if cached is None:
        known = {str(role) for role in Role}
        cached = frozenset(n for n in user.groups.values_list("name", flat=True) if n in known)
        user._opsportal_roles = cached
    return cached


def has_role(user: Any, *roles: Role) -> bool:
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    return bool(user.is_staff or user_roles(user) & {str(r) for r in roles})


def is_admin(user: Any) -> bool:
    return bool(getattr(user, "is_authenticated", False) and user.is_active and user.is_staff)


def role_permission(*roles: Role) -> type[BasePermission]:
    """A DRF permission class admitting staff and the given roles."""

    class HasRole(BasePermission):
        message = "Your role does not allow this action."

        def has_permission(self, request: Any, view: Any) -> bool:
            return has_role(request.user, *roles)

    HasRole.__name__ = "HasRole_" + "_".join(roles)
    return HasRole


class IsAdmin(BasePermission):
    message = "Only administrators can do this."

    def has_permission(self, request: Any, view: Any) -> bool:
        return is_admin(request.user)


def role_required(*roles: Role, admin: bool = False) -> Callable[[ViewFn], ViewFn]:
    """Page views: anonymous → login page; signed in without the role → 403."""

    def decorate(view: ViewFn) -> ViewFn:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            allowed = is_admin(request.user) if admin else (not roles or has_role(request.user, *roles))
            if not allowed:
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapper

    return decorate

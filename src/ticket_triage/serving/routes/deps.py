"""Annotated dependency aliases, so every handler declares what it needs in one word."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ticket_triage.serving.auth import Principal, Role, require_roles
from ticket_triage.serving.service import Service


def get_service(request: Request) -> Service:
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]
PredictCaller = Annotated[Principal, Depends(require_roles(Role.PREDICT))]
AnyCaller = Annotated[Principal, Depends(require_roles(Role.PREDICT, Role.REVIEW))]
ReviewCaller = Annotated[Principal, Depends(require_roles(Role.REVIEW))]
AdminCaller = Annotated[Principal, Depends(require_roles(Role.ADMIN))]

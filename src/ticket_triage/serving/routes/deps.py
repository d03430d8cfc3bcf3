"""Annotated dependency aliases, so every handler declares the parts it needs in one word each."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ticket_triage.config import Settings
from ticket_triage.monitoring.metrics import ServiceMetrics
from ticket_triage.review import ReviewStore
from ticket_triage.serving.auth import Principal, Role, require_roles
from ticket_triage.serving.batcher import MicroBatcher
from ticket_triage.serving.cache import PredictionCache
from ticket_triage.serving.monitoring_pollers import MonitoringPollers
from ticket_triage.serving.prediction_flow import PredictionFlow
from ticket_triage.serving.registry import ModelRegistry
from ticket_triage.serving.service import Service


def _service(request: Request) -> Service:
    return request.app.state.service


_ServiceDep = Annotated[Service, Depends(_service)]


def _settings(service: _ServiceDep) -> Settings:
    return service.settings


def _registry(service: _ServiceDep) -> ModelRegistry:
    return service.registry


def _predictions(service: _ServiceDep) -> PredictionFlow:
    return service.predictions


def _reviews(service: _ServiceDep) -> ReviewStore:
    return service.reviews


def _monitors(service: _ServiceDep) -> MonitoringPollers:
    return service.monitors


def _metrics(service: _ServiceDep) -> ServiceMetrics:
    return service.metrics


def _cache(service: _ServiceDep) -> PredictionCache:
    return service.cache


def _batcher(service: _ServiceDep) -> MicroBatcher:
    return service.batcher


SettingsDep = Annotated[Settings, Depends(_settings)]
RegistryDep = Annotated[ModelRegistry, Depends(_registry)]
PredictionsDep = Annotated[PredictionFlow, Depends(_predictions)]
ReviewStoreDep = Annotated[ReviewStore, Depends(_reviews)]
MonitorsDep = Annotated[MonitoringPollers, Depends(_monitors)]
MetricsDep = Annotated[ServiceMetrics, Depends(_metrics)]
CacheDep = Annotated[PredictionCache, Depends(_cache)]
BatcherDep = Annotated[MicroBatcher, Depends(_batcher)]

PredictCaller = Annotated[Principal, Depends(require_roles(Role.PREDICT))]
AnyCaller = Annotated[Principal, Depends(require_roles(Role.PREDICT, Role.REVIEW))]
ReviewCaller = Annotated[Principal, Depends(require_roles(Role.REVIEW))]
AdminCaller = Annotated[Principal, Depends(require_roles(Role.ADMIN))]

"""Planning: typed snapshots in, a frozen ``Plan`` out. No I/O and no clock reads here."""

from .model import Action, Issue, Plan
from .users import UserPlanOptions, UsersSnapshot, plan_users

__all__ = ["Action", "Issue", "Plan", "UserPlanOptions", "UsersSnapshot", "plan_users"]

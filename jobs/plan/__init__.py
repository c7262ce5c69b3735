"""Planning: typed snapshots in, a frozen ``Plan`` out. No I/O and no clock reads here."""

from jobs.plan.model import Action, Issue, Plan
from jobs.plan.users import UserPlanOptions, plan_users

__all__ = ["Action", "Issue", "Plan", "UserPlanOptions", "plan_users"]

"""trafl.tasks"""

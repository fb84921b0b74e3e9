"""trafl.models"""

include $(sort $(wildcard $(BR2_EXTERNAL_NODUS_PATH)/package/*/*.mk))

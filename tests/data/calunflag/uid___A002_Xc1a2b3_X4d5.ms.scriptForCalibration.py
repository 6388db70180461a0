# ALMA Data Reduction Script

# Created using $Id: almaqa2csg.py,v 1.13 2021/02/02 14:15:24 dpetry Exp $

thesteps = []
step_title = {0: 'A priori flagging',
              1: 'Listobs, and save original flags',
              2: 'Initial flagging',
              3: 'Putting a model for the flux calibrator(s)'}

try:
  print('List of steps to be executed ...', mysteps)
  thesteps = mysteps
except:
  print('global variable mysteps not set.')
if (thesteps==[]):
  thesteps = range(0,len(step_title))
  print('Executing all steps: ', thesteps)

import re

#if re.search('^6.5.4', '.'.join([str(i) for i in cu.version().tolist()[:-1]])) == None:
# sys.exit('ERROR: PLEASE USE THE SAME VERSION OF CASA THAT YOU USED FOR GENERATING THE SCRIPT: 6.5.4')

# A priori flagging
mystep = 0
if(mystep in thesteps):
  casalog.post('Step '+str(mystep)+' '+step_title[mystep],'INFO')

  flagdata(vis = 'uid___A002_Xc1a2b3_X4d5.ms.split', mode = 'manual', autocorr = True, flagbackup = False)

  # quasar absorption line (see QA2 report (section 3))
  flagdata(spw='0:2~3', field='0',
           vis='uid___A002_Xc1a2b3_X4d5.ms.split', flagbackup=False,
     mode='manual')

# Listobs, and save original flags
mystep = 1
if(mystep in thesteps):
  casalog.post('Step '+str(mystep)+' '+step_title[mystep],'INFO')

  flagmanager(vis = 'uid___A002_Xc1a2b3_X4d5.ms.split', mode = 'save', versionname = 'Original')

# Initial flagging
mystep = 2
if(mystep in thesteps):
  casalog.post('Step '+str(mystep)+' '+step_title[mystep],'INFO')

  # Flagging atmospheric line(s)

  flagdata(vis = 'uid___A002_Xc1a2b3_X4d5.ms.split',
    mode = 'manual',
    spw = '0:5~9',
    field = '1',
    flagbackup = False)

  # residual atmospheric line in the science target
  flagdata(vis = 'uid___A002_Xc1a2b3_X4d5.ms.split', mode = 'manual', field = '2', spw = '0:12~13', flagbackup = False)

  # edge channels on all sources
  flagdata(vis = 'uid___A002_Xc1a2b3_X4d5.ms.split', mode = 'manual', field = '', spw = '0:0~0;15~15', flagbackup = False)
